"""Build the synthetic name pools shipped in ``wmw_link/data/`` (run once; output is committed).

Run ``python -m wmw_link.synth._build_pools`` to regenerate ``forenames.csv``, ``surnames.csv``
and ``name_variants.csv``. The head of each pool is hand-curated in rough order of frequency
among West Midlands residents of that background (so Smith, Khan, Ahmed, Begum, Singh and Patel
come out common); the long tail comes from Faker's locale lists (MIT licence). Weights follow a
Zipf-like curve over the curated head and a small flat weight over the tail, which gives the
skewed name-frequency distribution that term-frequency adjustments in linkage rely on.
"""

from __future__ import annotations

import csv
import importlib
import unicodedata
from pathlib import Path

from wmw_link.synth.regions import ETHNIC_GROUPS

DATA = Path(__file__).resolve().parent.parent / "data"

# Detailed ethnic groups with a name pool of their own ("mixed" draws from two pools).
GROUPS = [g for g in ETHNIC_GROUPS if g != "mixed"]

_HEAD: dict[tuple[str, str], str] = {
    ("white_british", "M"): """Oliver Jack Harry James William Thomas George Charlie Daniel Joshua
        Jacob Samuel Matthew Michael David John Paul Mark Andrew Richard Robert Christopher Stephen
        Peter Anthony Gary Lee Craig Darren Wayne Dean Jamie Ryan Liam Luke Adam Ben Callum Connor
        Kieran Nathan Scott Simon Steven Ian Neil Martin Kevin Carl Jason Shaun Ashley Alan Graham
        Philip Jonathan Nicholas Edward Alexander Joseph Alfie Archie Leo Noah Oscar Freddie Henry
        Theo Arthur Max Toby Lewis Reece Tyler Kyle Bradley Jordan Aaron Stuart Keith Barry Colin
        Trevor Terry Dennis Roy Clive Nigel Derek Malcolm Gordon Brian Kenneth Raymond Frank""",
    ("white_british", "F"): """Olivia Amelia Isla Ava Emily Sophie Jessica Lily Grace Chloe Sarah
        Emma Laura Rebecca Hannah Charlotte Lucy Amy Katie Gemma Stacey Kelly Claire Lisa Michelle
        Nicola Joanne Donna Tracey Julie Karen Susan Helen Elizabeth Victoria Rachel Natalie
        Samantha Jennifer Louise Zoe Holly Megan Ellie Abigail Bethany Jade Leanne Kirsty Danielle
        Amanda Angela Deborah Dawn Alison Sharon Wendy Jacqueline Catherine Margaret Patricia
        Christine Linda Carol Janet Pauline Sandra Tina Gillian Jane Anne Mary Joanne Kerry
        Natasha Hayley Kayleigh Chelsea Courtney Paige Shannon Freya Poppy Evie Ruby Millie Daisy
        Phoebe Scarlett Florence Alice Matilda Rosie Harriet Eleanor""",
    ("eastern_european", "M"): """Piotr Krzysztof Tomasz Pawel Michal Marcin Lukasz Jakub Adam
        Andrzej Jan Marek Grzegorz Mateusz Kamil Dawid Bartosz Wojciech Rafal Robert Mariusz
        Sebastian Daniel Dariusz Ionut Andrei Alexandru Mihai Florin Cristian Gheorghe Vasile
        Bogdan Marius Adrian Ionel Darius Mindaugas Tomas Andrius Darius Jonas Martin Peter Juraj
        Lukas Milan Jozef Viktor Dmytro Oleksandr Serhii Andriy Yuriy Ivan""",
    ("eastern_european", "F"): """Anna Katarzyna Agnieszka Malgorzata Joanna Magdalena Monika
        Ewa Barbara Karolina Aleksandra Natalia Marta Paulina Justyna Dorota Beata Elzbieta
        Ioana Elena Maria Andreea Alexandra Mihaela Cristina Gabriela Simona Raluca Roxana Ana
        Ruta Jurgita Egle Laura Kristina Zuzana Lucia Jana Martina Veronika Olena Oksana Iryna
        Tetiana Yulia Natalia Svetlana""",
    ("indian", "M"): """Gurpreet Harpreet Jaswinder Sukhwinder Rajinder Kuldip Manjit Baljit
        Harjit Amarjit Jasbir Paramjit Ravinder Surinder Parminder Harvinder Kulwant Balvinder
        Sandeep Amandeep Manpreet Jaspreet Harjinder Gurdeep Arjun Rohan Vikram Rajesh Sanjay
        Anil Sunil Ashok Rakesh Deepak Vijay Pradeep Amit Nikhil Rahul Ravi Kiran Dev Jay Hitesh
        Nilesh Mahesh Dinesh Paresh Bhavesh Ketan Mitesh Jignesh Kamal Arun Mohan Suresh Ramesh
        Harish Krishna Aman Karan Jasdeep Simran Arav Ishaan Veer""",
    ("indian", "F"): """Harjit Manjit Jaswinder Kulwinder Rajwinder Sukhwinder Parminder Baljit
        Amarjit Gurpreet Harpreet Manpreet Jaspreet Navdeep Rupinder Simran Jasleen Kiran
        Priya Pooja Neha Anjali Sunita Anita Geeta Meena Rekha Seema Shilpa Sapna Nisha Asha
        Usha Hema Kajal Komal Divya Deepa Bhavna Hetal Nisha Jyoti Kavita Rita Savita Shanti
        Leela Parvati Sarita Ritu Payal Diya Anaya Aanya Isha Riya Tara Meera""",
    ("pakistani", "M"): """Mohammed Muhammad Mohammad Ali Imran Asif Tariq Zahid Shahid Khalid
        Amjad Arshad Nadeem Naveed Waseem Kashif Adnan Faisal Usman Bilal Hamza Zain Ibrahim
        Yusuf Abdul Abdullah Aftab Akram Azhar Babar Farooq Haroon Irfan Javed Junaid Kamran
        Liaquat Mahmood Majid Mansoor Mushtaq Nasir Omar Rashid Rizwan Saeed Sajid Shabir
        Shakeel Sohail Tahir Tanveer Umar Waqar Yasir Zubair Zulfiqar Aamir Asad Ayaan Haris
        Raza Saqib Shoaib Talha Owais Danyal Rehan Musa Idris Zakariya""",
    ("pakistani", "F"): """Fatima Ayesha Aisha Maryam Zainab Sana Amina Shazia Nasreen Samina
        Rubina Parveen Shabana Nazia Saima Rukhsana Kausar Farzana Tahira Yasmin Nadia Asma
        Bushra Nighat Shaheen Shamim Tasleem Zahida Iqra Hira Mehwish Rabia Sadia Sidra Uzma
        Aliya Amna Anam Alishba Hafsa Hajra Khadija Laiba Mahnoor Noor Rida Safa Zara Zoya
        Eman Inaya Hania Aleena Haleema""",
    ("bangladeshi", "M"): """Mohammed Muhammad Abdul Mohammad Shahid Jamal Kamal Rahim Karim
        Anwar Aminul Shahidul Rafiqul Nazrul Monir Mizanur Habibur Mahbub Faruk Jahangir Ruhul
        Shafiq Shamim Sohel Rubel Suhel Nurul Abdur Rashid Salim Shahin Tanvir Imran Ashraf Rayhan
        Ibrahim Yusuf Zakir Jubair Tahmid Sabbir Arif Hasan Hussain Forhad Masum Milon Alamgir""",
    ("bangladeshi", "F"): """Fatema Fatima Rokeya Shahana Hasina Nasima Salma Rahima Jahanara
        Rehana Shirin Sufia Taslima Nazma Ruksana Shapla Shilpi Ruma Rina Mitu Sultana Laily Halima
        Amina Khadija Sumaiya Tahmina Farhana Nusrat Afsana Sabina Marium Jannat Ayesha Tania
        Sadia Sharmin Mahmuda Lipi Shamima""",
    ("black_african", "M"): """Emmanuel Samuel Daniel David Joseph Michael John Peter Godfrey
        Kwame Kofi Kwabena Kwaku Yaw Kojo Kwesi Chinedu Obinna Emeka Ifeanyi Chukwuemeka Tunde
        Oluwaseun Ayodele Babatunde Olumide Femi Segun Adewale Abdi Mohamed Ahmed Hassan Abdullahi
        Abdirahman Omar Ali Yusuf Farah Tendai Tatenda Farai Blessing Tafadzwa Kudakwashe
        Simbarashe Takudzwa Ebenezer Prince Godwin Solomon Isaac Elijah""",
    ("black_african", "F"): """Grace Blessing Mary Esther Patience Joy Mercy Faith Gifty Abena
        Akosua Ama Adwoa Efua Yaa Akua Ngozi Chioma Adaeze Chiamaka Nneka Oluwakemi Funmilayo
        Folake Bukola Yetunde Adebola Temitope Halima Amina Fadumo Hodan Sahra Ayan Asha Hibo
        Nimo Ruvimbo Chipo Tendai Rutendo Nyasha Tatenda Precious Comfort Gladys Vimbai""",
    ("black_caribbean", "M"): """Delroy Winston Leroy Errol Lloyd Clifton Trevor Everton Desmond
        Marcus Andre Jermaine Tyrone Dwayne Carl Michael Anthony Mark Paul David Richard Courtney
        Kemar Romario Shane Jerome Darnell Nathaniel Isaiah Elijah Jaden Kyle Kai Malachi Tyrese
        Reuben Curtis Leon Neville Lincoln Glenroy Devon""",
    ("black_caribbean", "F"): """Marcia Beverley Jennifer Paulette Yvonne Sonia Janice Denise
        Carol Michelle Tanya Sharon Claudette Hyacinth Pearl Merle Grace Shanice Jasmine Tia
        Chantelle Keisha Kayla Aaliyah Nia Imani Destiny Jada Shantelle Latoya Rochelle Simone
        Natalie Monique Kerry-Ann Sasha""",
    ("arab", "M"): """Mohammed Ahmed Mahmoud Mustafa Omar Ali Khalid Hassan Hussein Ibrahim
        Yousef Abdullah Abdulrahman Khaled Saleh Sami Tarek Walid Fadi Rami Nabil Jamal Karim
        Amir Bassam Samir Hamza Ammar Anas Bilal Faisal Majed Nasser Osama Ziad Marwan Mazen""",
    ("arab", "F"): """Fatima Aisha Mariam Noor Layla Huda Rania Sara Reem Dina Rana Hana Amira
        Salma Yasmin Zainab Nadia Lina Samira Rasha Hiba Amal Maha Shaima Asmaa Ghada Nour Rawan""",
}

_SURNAME_HEAD: dict[str, str] = {
    "white_british": """Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson
        Roberts Robinson Thompson Wright Walker White Edwards Hughes Green Hall Lewis Harris
        Clarke Jackson Wood Turner Martin Cooper Hill Ward Morris Moore Clark Lee King Baker
        Harrison Morgan Allen James Scott Phillips Watson Davis Parker Price Bennett Young Griffiths
        Mitchell Kelly Cook Carter Richardson Bailey Collins Bell Shaw Murphy Miller Cox Richards
        Marshall Anderson Simpson Ellis Adams Wilkinson Foster Chapman Powell
        Webb Rogers Gray Mason Hunt Campbell Matthews Owen Palmer Holmes Mills Barnes
        Knight Lloyd Butler Russell Barker Fisher Stevens Jenkins Dixon Fletcher""",
    "eastern_european": """Nowak Kowalski Wisniewski Wojcik Kowalczyk Kaminski Lewandowski
        Zielinski Szymanski Wozniak Dabrowski Kozlowski Jankowski Mazur Kwiatkowski Krawczyk
        Piotrowski Grabowski Nowakowski Pawlowski Michalski Nowicki Adamczyk Dudek Zajac Wieczorek
        Jablonski Krol Majewski Olszewski Popescu Ionescu Popa Pop Radu Dumitru Stan Stoica
        Gheorghe Matei Ciobanu Rusu Munteanu Kazlauskas Jankauskas Petrauskas Stankevicius
        Vasiliauskas Horvath Kovac Varga Toth Nagy Novak Shevchenko Kovalenko Bondarenko""",
    "indian": """Singh Kaur Patel Sharma Kumar Gill Sandhu Sidhu Dhillon Bains Johal Sahota
        Bassi Atwal Chahal Grewal Virdi Sangha Mann Rai Hayer Bhogal Kang Thandi Sohal Dhaliwal
        Lall Kalsi Mistry Parmar Chauhan Solanki Rathod Joshi Mehta Shah Modi Desai Gohil
        Makwana Chavda Lad Thakkar Pandya Verma Gupta Mehra Kapoor Malhotra Chopra Bhatt Nair
        Pillai Reddy Rao Iyer Menon""",
    "pakistani": """Khan Hussain Ahmed Ali Akhtar Iqbal Mahmood Shah Bibi Begum Rashid Aslam
        Javed Mirza Butt Malik Riaz Saleem Rehman Rafiq Hanif Yousaf Sadiq Anwar Arshad Bashir
        Hameed Latif Majid Nawaz Qureshi Rauf Sabir Shafiq Tariq Zaman Chaudhry Ashraf Azam
        Bhatti Farooq Ghafoor Habib Ilyas Jabbar Kazmi Mughal Naqvi Rana Raja Saddique Siddiqui
        Sultan Usman Zafar Awan Mir Abbasi Gondal""",
    "bangladeshi": """Begum Ahmed Miah Uddin Ali Rahman Islam Hussain Khatun Khan Hoque Alam
        Bibi Choudhury Chowdhury Rashid Haque Karim Aziz Sarkar Talukder Mollah Siddique Amin
        Hossain Akther Nessa Kabir Mahmud Sheikh Bhuiyan Mridha Biswas Howlader Khanom Sultana""",
    "black_african": """Mensah Owusu Boateng Asante Osei Appiah Agyeman Adjei Acheampong Amponsah
        Okafor Okonkwo Adeyemi Olawale Chukwu Eze Obi Nwosu Adebayo Ogunleye Oyelaran Akinyemi
        Balogun Adeleke Mohamed Abdi Hassan Ahmed Farah Ali Omar Warsame Jama Nur Moyo Ndlovu
        Sibanda Dube Ncube Mutasa Chikwanha Mugabe Banda Phiri Mwangi Otieno Kamau Ochieng
        Mensah-Bonsu Tesfaye Haile Bekele Tadesse""",
    "black_caribbean": """Campbell Brown Williams Johnson Thomas Smith Francis Henry James Clarke
        Robinson Edwards Morgan Grant Gordon Reid Simpson Stewart Thompson Bailey Richards Allen
        Walker Lewis Davis Graham McKenzie Anderson Spencer Barrett Wallace Samuels Powell Dixon
        Forbes Blake Bryan Lawrence Hamilton Ferguson Dacosta McFarlane Ellis Murray""",
    "arab": """Ahmed Mohamed Ali Hassan Hussein Ibrahim Mahmoud Mustafa Abdullah Saleh Khalil
        Nasser Haddad Mansour Hamdan Aziz Yousef Farouk Salem Jaber Qassem Saeed Othman Omar
        Khoury Haddad Sabbagh Najjar Darwish Al-Masri Al-Sayed Al-Ahmad Al-Hassan Al-Ali
        Abdelrahman Elsayed Ismail Suleiman Awad Ramadan""",
}

# Long tails from Faker (MIT): locale -> (male attr, female attr, surname attr) by group.
_FAKER_TAILS: dict[str, list[str]] = {
    "white_british": ["en_GB"],
    "eastern_european": ["pl_PL", "ro_RO", "sk_SK"],
    "indian": ["en_IN"],
    "black_african": ["tw_GH", "yo_NG", "en_KE"],
}

# Nicknames and spelling variants (both directions are emitted). First item is the formal name.
_NICKNAMES = """William:Bill,Will,Billy,Liam
Robert:Bob,Rob,Bobby,Robbie
Richard:Rich,Rick,Dick,Richie
James:Jim,Jimmy,Jamie
Thomas:Tom,Tommy
Michael:Mike,Mick,Mikey
Christopher:Chris,Kit
Matthew:Matt
Daniel:Dan,Danny
David:Dave,Davey
Anthony:Tony,Ant
Andrew:Andy,Drew
Stephen:Steve,Stevie,Steven
Steven:Steve,Stephen
Joseph:Joe,Joey
Jonathan:Jon,Jonny
Nicholas:Nick,Nicky
Edward:Ed,Eddie,Ted
Alexander:Alex,Sandy
Samuel:Sam,Sammy
Benjamin:Ben,Benny
Peter:Pete
Kenneth:Ken,Kenny
Raymond:Ray
Frederick:Fred,Freddie
Alfred:Alfie,Alf
Archibald:Archie
Henry:Harry,Hal
Charles:Charlie,Chas
Gary:Gaz
Philip:Phil,Phillip
Timothy:Tim
Gregory:Greg
Leonard:Len,Lenny,Leo
Terence:Terry
Dennis:Den
Lawrence:Larry,Laurie
Elizabeth:Liz,Beth,Lizzie,Betty,Eliza
Margaret:Maggie,Peggy,Meg,Marge
Catherine:Kate,Cath,Cathy,Katie,Katherine,Kathryn
Katherine:Kate,Kathy,Katie,Catherine
Jennifer:Jen,Jenny
Rebecca:Becky,Becca
Victoria:Vicky,Tori
Samantha:Sam,Sammie
Susan:Sue,Susie
Patricia:Pat,Trish,Patsy
Deborah:Debbie,Debra,Deb
Christine:Chris,Chrissie
Jacqueline:Jackie
Alexandra:Alex,Sasha,Alexa
Natalie:Nat
Nicola:Nicky,Nikki
Charlotte:Lottie,Charlie
Abigail:Abby,Abi
Eleanor:Ellie,Nell
Amanda:Mandy
Pamela:Pam
Sandra:Sandy
Jessica:Jess
Hannah:Hanna
Sarah:Sara
Louise:Lou
Joanne:Jo,Joanna
Gemma:Jemma
Stacey:Stacy
Tracey:Tracy
Kerry:Kerrie
Leanne:Lianne
Zoe:Zoë
Chloe:Chloë
Sophie:Sophia
Isla:Isla
Ryan:Rian
Shaun:Sean,Shawn
Jamie:Jamey
Jakub:Kuba
Piotr:Peter
Aleksandra:Ola
Katarzyna:Kasia
Malgorzata:Gosia
Krzysztof:Krzys
Gurpreet:Preet
Harpreet:Harp
Jaswinder:Jas
Sukhwinder:Sukhi
Rajinder:Raj
Rajesh:Raj
Kuldip:Kuldeep
Sandeep:Sandy
Mohammed:Mo
Ibrahim:Ibby
Abdullah:Abdul
Yusuf:Yousuf,Yousef,Joseph
Emmanuel:Manny
Oluwaseun:Seun
Babatunde:Tunde
Chukwuemeka:Emeka
Oluwakemi:Kemi
Funmilayo:Funmi
Temitope:Tope
Kwabena:Kobby
Delroy:Del
Winston:Winnie
Marcia:Marcie"""

# Transliteration variants of South Asian and Arabic names (all spellings are interchangeable).
_TRANSLIT = """Mohammed Muhammad Mohammad Mohamed Muhammed Mohamad Mohd Mahomed
Ahmed Ahmad Ahmet Ahmmed
Hussain Hussein Husain Hossain Hosain Husein
Hassan Hasan Hassen
Mahmood Mahmud Mehmood Mahmoud
Rahman Rehman Rahmaan
Choudhury Chowdhury Chaudhry Chaudhary Choudhry
Siddiqui Siddique Siddiqi Siddiky
Iqbal Ikbal
Yusuf Yousuf Yousef Yousaf Yusef
Fatima Fatema Fathima Fatimah
Aisha Ayesha Aysha Aishah
Mariam Maryam Miriam Mariyam
Zainab Zaynab Zeinab
Khadija Khadijah Khadeeja
Ibrahim Ebrahim Ibraheem
Abdullah Abdulla Abdallah
Abdul Abdool Abdel
Omar Umar Omer
Osman Usman Othman Uthman
Mustafa Mostafa Mustapha
Rashid Rasheed Rashed
Saeed Said Sayed Syed
Khalid Khaled Khalied
Tariq Tarik Tarek Tareq
Shahid Shaheed Shahed
Javed Javaid Jawed
Nasreen Nasrin Nasreem
Parveen Parvin Perveen
Yasmin Yasmeen Yasmine Jasmin
Rukhsana Ruksana Rukshana
Farzana Farzanah Farjana
Shabana Shabnam Shabanah
Begum Begom Begam
Miah Mia Meah
Uddin Udin Uddeen
Islam Islaam
Haque Hoque Haq Huq
Akhtar Akther Akter Akhter
Qureshi Kureshi Quraishi
Rafiq Rafique Rafik
Shafiq Shafique Shafik
Anwar Anwer Anower
Habib Habeeb
Ali Aly
Bilal Belal
Hamza Hamzah
Zubair Zubayr Jubair
Kamal Kamaal
Jamal Jamaal Gamal
Karim Kareem Karem
Salim Saleem Selim
Nasir Nasser Naseer
Amina Aminah Ameena
Noor Nur Nour
Huda Houda
Layla Laila Leila Leyla
Sultana Sultanah
Mizanur Mizan
Gurpreet Gurprit
Harjit Harjeet
Manjit Manjeet
Jaswinder Jasvinder
Sukhwinder Sukhvinder
Ravinder Ravindar Rabinder
Kulwant Kulvant
Balvinder Balwinder
Parminder Parmindar
Sandhu Sindhu
Dhillon Dhilon
Kaur Kour
Chauhan Chouhan
Mistry Mistri"""


# Spelling variants used only by the hard profile's ``spelling_variant`` error (kept apart so
# the standard profile's nickname and transliteration tables, and its extracts, stay as they
# were). One family per line, spellings interchangeable; "_" stands for a space, so compound
# Arabic names appear both joined and split ("Abdul_Rahman"). Gujarati given names carry the
# -bhai / -ben / -kumar suffixes official documents often add.
_SPELLING = """Ann Anne
Clare Claire
Jon John
Sean Shaun Shawn
Stuart Stewart
Neil Neal
Alan Allan Allen
Matthew Mathew
Leanne Lianne Leann
Kerry Kerrie Keri
Lindsay Lindsey
Hayley Haley Hailey
Kayleigh Kayley Kaylee
Lily Lilly Lillie
Millie Milly
Katie Katy Katey
Rebecca Rebekah
Carol Carole
Beverley Beverly
Dwayne Duane
Jermaine Germaine
Jaden Jayden Jaiden
Isaac Isaak
Aaron Aron
Nathaniel Nathanael
Thompson Thomson Tomson
Phillips Philips
Davies Davis
Clarke Clark
Reid Reed Read
Grey Gray
Matthews Mathews
McDonald MacDonald Macdonald
McKenzie MacKenzie Mackenzie
Lawrence Laurence
Sohail Suhail Sohel Suhel
Nadeem Nadim
Naveed Navid Naved
Waseem Wasim
Faisal Faysal Feisal
Haroon Harun Haroun
Irfan Erfan
Liaquat Liaqat Liakat
Majid Majeed Majed Maged
Mansoor Mansur Mansour
Shabir Shabbir
Shakeel Shakil
Tahir Taher
Tanveer Tanvir
Yasir Yaser Yasser
Zulfiqar Zulfikar
Aamir Amir Aamer
Hanif Haneef
Hameed Hamid
Latif Lateef
Farooq Farouk Faruk Faruq
Ramzan Ramadan Ramadhan
Mizanur Mizanoor
Habibur Habibor
Rafiqul Rafikul
Aminul Aminool
Nurul Noorul
Rahim Raheem
Rahima Raheema
Nasima Naseema
Hasina Haseena
Rokeya Rukia Rokia
Mohammed Md
Abdulrahman Abdul_Rahman Abdurrahman Abdelrahman
Abdelrahman Abdel_Rahman Abdul_Rahman
Al-Masri Almasri Al_Masri Masri
Al-Sayed Alsayed Al_Sayed
Al-Ahmad Alahmad Al_Ahmad
Al-Hassan Alhassan Al_Hassan
Al-Ali Alali Al_Ali
Elsayed El-Sayed El_Sayed
Saleh Salih
Khalil Khaleel
Nasser Naser
Jaber Jabir
Qassem Qasim Kassem Kasim
Khoury Khouri Khury
Darwish Darweesh
Ismail Ismael Esmail
Suleiman Sulaiman Suleyman Sulayman
Walid Waleed
Nabil Nabeel
Samir Sameer
Osama Usama Usamah
Ziad Ziyad Zeyad
Mazen Mazin
Amira Ameera
Samira Sameera
Hiba Heba
Lina Leena
Abdirahman Abdurahman Abdulrahman
Abdullahi Abdulahi
Warsame Warsama
Kojo Kodjo
Yaw Yao
Kwabena Kobina
Kwame Kwami
Jasbir Jasbeer
Paramjit Paramjeet
Surinder Surender Surindar
Amandeep Amandip
Manpreet Manprit
Jaspreet Jasprit
Harjinder Harjindar
Gurdeep Gurdip
Baljit Baljeet
Amarjit Amarjeet
Pradeep Pradip
Deepak Dipak
Sunil Suneel
Virdi Virdee
Lall Lal
Rathod Rathore Rathor
Sharma Sarma
Hitesh Hiteshkumar Hiteshbhai
Nilesh Nileshkumar Nileshbhai
Mahesh Maheshkumar Maheshbhai
Dinesh Dineshkumar Dineshbhai
Paresh Pareshkumar Pareshbhai
Bhavesh Bhaveshkumar Bhaveshbhai
Jignesh Jigneshkumar Jigneshbhai
Mitesh Miteshkumar Miteshbhai
Suresh Sureshkumar Sureshbhai
Ramesh Rameshkumar Rameshbhai
Bhavna Bhavana Bhavnaben
Hetal Hetalben
Kajal Kajalben
Komal Komalben
Geeta Gita Geetaben
Meena Mina Meenaben
Rekha Rekhaben
Usha Ushaben
Seema Sima
Pooja Puja"""


def _split(block: str) -> list[str]:
    seen: dict[str, None] = {}
    for tok in block.split():
        seen.setdefault(tok, None)
    return list(seen)


def _ascii_ok(name: str) -> bool:
    # Tails keep Latin names only; accents are fine (normalise strips them), scripts are not.
    stripped = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return (
        bool(stripped) and stripped.replace("-", "").replace("'", "").isalpha() and " " not in name
    )


def _faker_list(locale: str, attr: str) -> list[str]:
    prov = importlib.import_module(f"faker.providers.person.{locale}").Provider
    values = getattr(prov, attr, None)
    if values is None:
        return []
    return [str(v) for v in values if _ascii_ok(str(v))]


# Names far commoner than a smooth curve gives (weight multipliers within their pool).
_BOOST: dict[tuple[str, str, str], float] = {
    ("pakistani", "M", "Mohammed"): 5.0,
    ("pakistani", "M", "Muhammad"): 3.5,
    ("pakistani", "M", "Mohammad"): 2.0,
    ("bangladeshi", "M", "Mohammed"): 4.0,
    ("bangladeshi", "M", "Muhammad"): 3.0,
    ("bangladeshi", "M", "Abdul"): 3.0,
    ("arab", "M", "Mohammed"): 4.0,
    ("arab", "M", "Ahmed"): 2.0,
    ("black_african", "M", "Mohamed"): 2.0,
    ("bangladeshi", "", "Begum"): 2.0,
    ("bangladeshi", "", "Miah"): 1.5,
    ("pakistani", "", "Khan"): 2.0,
    ("indian", "", "Singh"): 2.5,
    ("indian", "", "Kaur"): 2.0,
    ("indian", "", "Patel"): 2.5,
}


def _weights(n_head: int, n_tail: int, head_scale: float = 1.0) -> list[float]:
    # Offset and exponent chosen so the commonest surname is ~1.5-2% of its group (Smith is
    # ~1.3% of England) and the top hundred cover about half.
    head = [head_scale / (r + 15) ** 0.8 for r in range(n_head)]
    tail_w = head[-1] * 0.5 if head else 1.0
    return head + [tail_w] * n_tail


def _variants() -> set[tuple[str, str, str]]:
    """(name, variant, kind) rows from the nickname and transliteration tables."""
    variants: set[tuple[str, str, str]] = set()
    for line in _NICKNAMES.splitlines():
        formal, rest = line.split(":")
        for nick in rest.split(","):
            if nick != formal:
                variants.add((formal, nick, "nickname"))
                variants.add((nick, formal, "nickname"))
    for line in _TRANSLIT.splitlines():
        spellings = line.split()
        for a in spellings:
            for b in spellings:
                if a != b:
                    variants.add((a, b, "transliteration"))
    for line in _SPELLING.splitlines():
        spellings = [w.replace("_", " ") for w in line.split()]
        for a in spellings:
            for b in spellings:
                if a != b:
                    variants.add((a, b, "spelling"))
    return variants


def write_variants() -> None:
    """Write ``name_variants.csv`` alone (no Faker needed; the name pools stay as they are)."""
    with open(DATA / "name_variants.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["name", "variant", "kind"])
        w.writerows(sorted(_variants()))


def build() -> None:
    """Write the three pool files into ``wmw_link/data``."""
    DATA.mkdir(parents=True, exist_ok=True)
    fore_rows: list[tuple[str, str, str, float]] = []
    for group in GROUPS:
        for sex, attr in (("M", "first_names_male"), ("F", "first_names_female")):
            head = _split(_HEAD[(group, sex)])
            tail: list[str] = []
            for loc in _FAKER_TAILS.get(group, []):
                tail += [n for n in _faker_list(loc, attr) if n not in head and n not in tail]
            tail = tail[:150]
            for name, w in zip(head + tail, _weights(len(head), len(tail)), strict=True):
                fore_rows.append(
                    (group, sex, name, round(w * _BOOST.get((group, sex, name), 1.0), 6))
                )
    sur_rows: list[tuple[str, str, float]] = []
    for group in GROUPS:
        head = _split(_SURNAME_HEAD[group])
        # Faker's British list includes names that are common in other groups here (Khan,
        # Patel...): keep those in their own group's pool only.
        others = {n for g in GROUPS if g != group for n in _split(_SURNAME_HEAD[g])}
        tail = []
        for loc in _FAKER_TAILS.get(group, []):
            tail += [
                n
                for n in _faker_list(loc, "last_names")
                if n not in head and n not in tail and (group != "white_british" or n not in others)
            ]
        tail = tail[:200]
        for name, w in zip(head + tail, _weights(len(head), len(tail)), strict=True):
            sur_rows.append((group, name, round(w * _BOOST.get((group, "", name), 1.0), 6)))
    with open(DATA / "forenames.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["group", "sex", "name", "weight"])
        w.writerows(fore_rows)
    with open(DATA / "surnames.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["group", "name", "weight"])
        w.writerows(sur_rows)
    write_variants()


if __name__ == "__main__":
    build()
